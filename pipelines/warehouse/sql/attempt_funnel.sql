-- Final calls per campaign x attempt number: how the connect rate falls with
-- each dial. An attempt is a final call to a contact within a campaign,
-- numbered from 1 by started_at (ties by call_id); a contact is a phone, and a
-- call without a phone is a contact of its own (stg_calls.contact_key).
-- campaign_id is NULL for direct calls, numbered together as one campaign.
create or replace view {schema}.attempt_funnel as

with calls as (

    select * from {schema}.stg_calls

),

attempts as (

    select
        campaign_id,
        is_connected,
        row_number() over (
            partition by campaign_id, contact_key
            order by started_at, call_id
        ) as attempt
    from calls
    where is_final

),

counted as (

    select
        campaign_id,
        attempt,
        count(*) as calls,
        count(*) filter (where is_connected) as connected
    from attempts
    group by campaign_id, attempt

),

final as (

    select
        campaign_id,
        attempt,
        calls,
        connected,
        connected::double / nullif(calls, 0) as connect_rate
    from counted

)

select * from final
