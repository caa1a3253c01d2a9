-- One row per campaign; campaign_id is NULL for direct (non-campaign) calls.
-- Rows come from final calls only: a campaign whose calls are all still in
-- progress has no row yet. A disposition outside the six documented ones
-- (the vendor may add some) counts in calls, in none of the six columns.
create or replace view {schema}.campaign_funnel as

with calls as (

    select * from {schema}.stg_calls

),

counted as (

    select
        campaign_id,
        count(*) as calls,
        count(*) filter (where is_connected) as connected,
        count(*) filter (where disposition = 'interested') as interested,
        count(*) filter (where disposition = 'not_interested') as not_interested,
        count(*) filter (where disposition = 'callback') as callback,
        count(*) filter (where disposition = 'not_reachable') as not_reachable,
        count(*) filter (where disposition = 'dnd') as dnd,
        count(*) filter (where disposition = 'escalated') as escalated,
        -- the average is over connected calls only
        avg(duration_seconds) filter (where is_connected) as avg_duration_seconds
    from calls
    where is_final
    group by campaign_id

),

final as (

    select
        campaign_id,
        calls,
        connected,
        interested,
        not_interested,
        callback,
        not_reachable,
        dnd,
        escalated,
        -- Rates are NULL when their divisor is 0. Every ratio and average is
        -- cast to double: avg() would be numeric on Postgres.
        connected::double / nullif(calls, 0) as connect_rate,
        interested::double / nullif(connected, 0) as interest_rate,
        escalated::double / nullif(connected, 0) as escalation_rate,
        avg_duration_seconds::double as avg_duration_seconds
    from counted

)

select * from final
