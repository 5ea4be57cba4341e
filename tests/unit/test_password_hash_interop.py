"""argon2id hashes from libsodium and from argon2-cffi are one format: each library verifies the
other's, whatever the lanes, so hashes stored before docs/adr/0049 still log in, and a hash that
neither can read is a wrong password, never an error (server/auth/passwords.py)."""

import pytest
from argon2 import PasswordHasher, Type

from server.auth import passwords

OWASP = passwords.HashParameters()
PASSWORD = "Pässwörd-1 ✓"  # not ASCII: both libraries must hash the same UTF-8 bytes


def test_a_new_hash_has_owasps_parameters_and_argon2_cffi_verifies_it():
    hashed = OWASP.hash(PASSWORD)
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PasswordHasher().verify(hashed, PASSWORD)
    # Same salt and digest lengths as argon2-cffi's, or every login would rehash.
    assert not OWASP.hasher().check_needs_rehash(hashed)
    assert passwords.verify_sync(PASSWORD, hashed) == (True, False)


@pytest.mark.parametrize("lanes", [1, 4])
def test_hashes_that_argon2_cffi_made_still_verify(lanes):
    stored = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=lanes, type=Type.ID).hash(PASSWORD)
    # Other lanes than the configured ones ask for a rehash, as any other parameter does.
    assert passwords.verify_sync(PASSWORD, stored) == (True, lanes != 1)
    assert passwords.verify_sync(PASSWORD + "x", stored) == (False, False)


def test_more_than_one_lane_is_hashed_by_argon2_cffi():
    hashed = passwords.HashParameters(parallelism=2).hash(PASSWORD)
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=2$")
    assert PasswordHasher().verify(hashed, PASSWORD)


def test_an_argon2i_hash_is_verified_by_argon2_cffi():
    stored = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.I).hash(PASSWORD)
    assert passwords.verify_sync(PASSWORD, stored) == (True, True)


@pytest.mark.parametrize(
    "stored",
    [
        "$argon2id$v=19$m=19456,t=2,p=1$garbage",
        "$argon2id$",
        "$argon2id$v=19$m=19456,t=2,p=1$é",
        "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAA",
    ],
)
def test_an_unreadable_argon2_hash_is_a_wrong_password_not_an_error(stored):
    assert passwords.verify_sync(PASSWORD, stored) == (False, False)
