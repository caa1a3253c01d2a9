-- Sentiment per disposition, over final calls that have a completed transcript.
create or replace view {schema}.sentiment_by_disposition as

with calls as (

    select * from {schema}.stg_calls

),

transcripts as (

    select * from {schema}.stg_transcripts

),

speaker_sentiment as (

    select * from {schema}.stg_speaker_sentiment

),

-- speaker_sentiment has one row per call and speaker, so this pivot holds at
-- most one agent and one customer value per call (avg() of a single value).
sentiment_per_call as (

    select
        call_id,
        avg(sentiment) filter (where speaker = 'agent') as agent_sentiment,
        avg(sentiment) filter (where speaker = 'customer') as customer_sentiment
    from speaker_sentiment
    group by call_id

),

joined as (

    select
        calls.disposition,
        transcripts.sentiment_overall,
        sentiment_per_call.agent_sentiment,
        sentiment_per_call.customer_sentiment
    from transcripts
    inner join calls
        on transcripts.call_id = calls.call_id
    left join sentiment_per_call
        on transcripts.call_id = sentiment_per_call.call_id
    where calls.is_final

),

final as (

    select
        disposition,
        count(*) as calls,
        -- cast to double: avg() would be numeric on Postgres
        avg(sentiment_overall)::double as avg_overall,
        avg(agent_sentiment)::double as avg_agent,
        avg(customer_sentiment)::double as avg_customer
    from joined
    group by disposition

)

select * from final
