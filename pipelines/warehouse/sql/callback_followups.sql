-- One row per final call with disposition 'callback' (the contact asked to be
-- called back at asked_at, its started_at), and the next call to the same
-- contact: the next one by started_at, then call_id, in any campaign and of
-- any status. A contact is a phone, and a call without a phone is a contact of
-- its own (stg_calls.contact_key), so it has no next call. The next_* columns
-- and hours_to_next_call are NULL while there is no next call.
create or replace view {schema}.callback_followups as

with calls as (

    select * from {schema}.stg_calls

),

with_next as (

    select
        call_id,
        campaign_id,
        contact_phone,
        disposition,
        is_final,
        started_at,
        lead(call_id) over by_contact as next_call_id,
        lead(started_at) over by_contact as next_call_at,
        lead(disposition) over by_contact as next_disposition
    from calls
    window by_contact as (partition by contact_key order by started_at, call_id)

),

final as (

    select
        call_id,
        campaign_id,
        contact_phone,
        started_at as asked_at,
        next_call_id,
        next_call_at,
        ((epoch(next_call_at) - epoch(started_at)) / 3600)::double as hours_to_next_call,
        next_disposition
    from with_next
    where is_final and disposition = 'callback'

)

select * from final
