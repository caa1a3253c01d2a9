-- Calls whose disposition is 'callback' and after which the same contact was
-- not called again: no call of any status to that contact with a strictly
-- later started_at (a call at the very same instant does not count). A call
-- without a phone is a contact of its own (stg_calls.contact_key): its
-- callback waits here until someone calls it back, which no later call can do.
create or replace view {schema}.callback_queue as

with calls as (

    select * from {schema}.stg_calls

),

last_call_per_contact as (

    select
        contact_key,
        max(started_at) as last_started_at
    from calls
    group by contact_key

),

final as (

    select
        calls.call_id,
        calls.contact_phone,
        calls.contact_name,
        calls.campaign_id,
        calls.started_at
    from calls
    inner join last_call_per_contact
        on calls.contact_key = last_call_per_contact.contact_key
    where
        calls.disposition = 'callback'
        and calls.started_at >= last_call_per_contact.last_started_at

)

select * from final
