-- Calls whose disposition is 'callback' and after which the same phone was
-- not called again: no call of any status to that contact_phone with a
-- strictly later started_at (a call at the very same instant does not count).
create or replace view {schema}.callback_queue as

with calls as (

    select * from {schema}.stg_calls

),

last_call_per_phone as (

    select
        contact_phone,
        max(started_at) as last_started_at
    from calls
    group by contact_phone

),

final as (

    select
        calls.call_id,
        calls.contact_phone,
        calls.contact_name,
        calls.campaign_id,
        calls.started_at
    from calls
    -- is not distinct from: calls with a NULL phone are grouped together too
    inner join last_call_per_phone
        on calls.contact_phone is not distinct from last_call_per_phone.contact_phone
    where
        calls.disposition = 'callback'
        and calls.started_at >= last_call_per_phone.last_started_at

)

select * from final
