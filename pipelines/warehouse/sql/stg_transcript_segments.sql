-- Staging for the transcript_segments table: one row per segment of a
-- transcript, renamed and typed. start_time and end_time are seconds from the
-- start of the call.
create or replace view {schema}.stg_transcript_segments as

with source as (

    select * from {schema}.transcript_segments

),

renamed as (

    select
        call_id,
        segment_index,
        speaker,
        text as segment_text,
        start_time::double as start_time,
        end_time::double as end_time,
        confidence::double as confidence
    from source

)

select * from renamed
