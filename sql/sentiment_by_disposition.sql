-- Sentiment per disposition, over final calls that have a completed transcript.
-- speaker_sentiment has one row per call and speaker, so pivoting it gives
-- at most one agent and one customer value per call.
create or replace view {schema}.sentiment_by_disposition as

with final_calls as (

    select call_id, disposition from {schema}.stg_calls
    where is_final

),

transcripts as (

    select call_id, sentiment_overall from {schema}.transcripts

),

speakers as (

    select
        call_id,
        avg(sentiment) filter (where speaker = 'agent') as agent_sentiment,
        avg(sentiment) filter (where speaker = 'customer') as customer_sentiment
    from {schema}.speaker_sentiment
    group by call_id

),

joined as (

    select
        final_calls.disposition,
        transcripts.sentiment_overall,
        speakers.agent_sentiment,
        speakers.customer_sentiment
    from transcripts
    inner join final_calls on final_calls.call_id = transcripts.call_id
    left join speakers on speakers.call_id = transcripts.call_id

),

final as (

    select
        disposition,
        count(*) as calls,
        avg(sentiment_overall) as avg_overall,
        avg(agent_sentiment) as avg_agent,
        avg(customer_sentiment) as avg_customer
    from joined
    group by disposition

)

select * from final
