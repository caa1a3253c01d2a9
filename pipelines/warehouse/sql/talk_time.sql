-- Seconds spoken by agent and customer, one row per call with a transcript
-- (including a transcript with no segments); segments of a call with no
-- transcript row are left out.
create or replace view {schema}.talk_time as

with transcripts as (

    select * from {schema}.stg_transcripts

),

segments as (

    select * from {schema}.stg_transcript_segments

),

spoken as (

    select
        call_id,
        -- a segment lasts end_time - start_time
        sum(end_time - start_time) filter (where speaker = 'agent') as agent_seconds,
        sum(end_time - start_time) filter (where speaker = 'customer') as customer_seconds
    from segments
    group by call_id

),

per_call as (

    select
        transcripts.call_id,
        -- a speaker who never speaks has 0 seconds, not NULL
        coalesce(spoken.agent_seconds, 0)::double as agent_seconds,
        coalesce(spoken.customer_seconds, 0)::double as customer_seconds
    from transcripts
    left join spoken
        on transcripts.call_id = spoken.call_id

),

final as (

    select
        call_id,
        agent_seconds,
        customer_seconds,
        -- NULL when nobody spoke
        customer_seconds / nullif(agent_seconds + customer_seconds, 0) as customer_share
    from per_call

)

select * from final
