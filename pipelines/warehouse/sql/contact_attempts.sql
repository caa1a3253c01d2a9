-- One row per campaign x contact with at least one attempt: how many dials it
-- took. An attempt is a final call to a contact within a campaign, numbered
-- from 1 by started_at (ties by call_id); a contact is a phone, and a call
-- without a phone is a contact of its own (stg_calls.contact_key).
-- first_connected_attempt is NULL when no attempt connected; last_disposition
-- and last_called_at (its started_at) are the last attempt's. campaign_id is
-- NULL for direct calls, counted together as one campaign.
create or replace view {schema}.contact_attempts as

with calls as (

    select * from {schema}.stg_calls

),

numbered as (

    select
        campaign_id,
        contact_key,
        contact_phone,
        disposition,
        started_at,
        is_connected,
        row_number() over (
            partition by campaign_id, contact_key
            order by started_at, call_id
        ) as attempt,
        count(*) over (partition by campaign_id, contact_key) as attempts
    from calls
    where is_final

),

per_contact as (

    select
        *,
        count(*) filter (where is_connected) over (
            partition by campaign_id, contact_key
        ) as connected_attempts,
        min(attempt) filter (where is_connected) over (
            partition by campaign_id, contact_key
        ) as first_connected_attempt
    from numbered

),

final as (

    select
        campaign_id,
        contact_phone,
        attempts,
        connected_attempts,
        first_connected_attempt,
        disposition as last_disposition,
        started_at as last_called_at
    from per_contact
    where attempt = attempts

)

select * from final
