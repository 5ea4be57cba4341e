-- time_prefixed_uuid: the id of every row that arrives with a purchase (purchases,
-- cashback_transactions, audit_logs). Applied by name by migration 8 (docs/adr/0047-time-prefixed-ids.md).

-- A version-4 UUID, as API.md §1 promises new ids are, whose first 48 bits are replaced by the
-- milliseconds since 1970 (the 'COMB' layout): the version and variant bits and 74 random bits stay
-- gen_random_uuid()'s. A new id then sorts after the ids of earlier milliseconds, so each primary
-- key index (and cashback_transactions' unique purchase_id) takes new ids on its rightmost pages.
-- Random ids put every insert on a random page of an index of 10 million rows: a page read and,
-- after each checkpoint, a full-page image in the WAL per index per insert. Uniqueness never rests
-- on the clock: a clock that steps back only makes new ids land among older ones.
CREATE OR REPLACE FUNCTION time_prefixed_uuid() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $fn$
    SELECT encode(
        overlay(uuid_send(gen_random_uuid())
                PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                FROM 1 FOR 6),
        'hex')::uuid
$fn$;
