-- Staging for the calls table: one row per call, renamed and typed, plus the
-- two flags every report uses. They are defined here and nowhere else:
--   is_final:     the call has ended, i.e. status is 'completed' or 'failed'
--                 ('in_progress' and any status the vendor may add are not final).
--   is_connected: final and duration_seconds > 0 (someone picked up and talked).
-- Both are false, never NULL, when status or duration_seconds is NULL.
--   contact_key:  the contact a call belongs to, what views match calls by: its phone; a call
--                 without a phone (NULL or '') is a contact of its own, matching no other call.
create or replace view {schema}.stg_calls as

with source as (

    select * from {schema}.calls

),

renamed as (

    select
        id as call_id,
        campaign_id,
        contact_phone,
        contact_name,
        status,
        disposition,
        duration_seconds::bigint as duration_seconds,
        language,
        started_at,
        ended_at,
        transcript_job_id,
        has_recording,
        coalesce(status in ('completed', 'failed'), false) as is_final,
        coalesce(nullif(contact_phone, ''), 'call:' || id) as contact_key
    from source

),

final as (

    select
        *,
        coalesce(is_final and duration_seconds > 0, false) as is_connected
    from renamed

)

select * from final
