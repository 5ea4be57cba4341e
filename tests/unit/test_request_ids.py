"""Generated request ids are UUID v4 strings (API.md §1.4), distinct across refills of the random batch."""

import uuid

from server.app import RandomUuids


def test_generated_ids_are_canonical_uuid4_strings_and_never_repeat():
    ids = RandomUuids()
    made = [ids.next() for _ in range(3 * RandomUuids.BATCH + 7)]  # across several refills
    for text in made:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text  # lower-case, canonical groups
    assert len(set(made)) == len(made)
