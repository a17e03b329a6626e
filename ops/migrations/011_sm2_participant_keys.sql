-- Participant keys of either crypto suite (hub/suites.py): Ed25519 (intl, 32 raw bytes) or SM2
-- (gm, the 65-byte uncompressed point 04 || x || y). Every existing key is Ed25519.
ALTER TABLE participant_keys
    ADD COLUMN algorithm text NOT NULL DEFAULT 'ed25519'
        CHECK (algorithm IN ('ed25519', 'sm2'));

ALTER TABLE participant_keys DROP CONSTRAINT IF EXISTS participant_keys_public_key_check;

ALTER TABLE participant_keys ADD CONSTRAINT participant_keys_public_key_form CHECK (
    (algorithm = 'ed25519' AND length(public_key) = 32)
    OR (algorithm = 'sm2' AND length(public_key) = 65 AND get_byte(public_key, 0) = 4)
);

-- Encryption keys of the gm suite: SM2 public-key encryption (GB/T 32918.4) of the content key,
-- attested like the others by the owner's signing key, whose signature may now be SM2 (DER,
-- at most 72 bytes) as well as Ed25519 (64 bytes).
ALTER TABLE participant_encryption_keys DROP CONSTRAINT IF EXISTS participant_encryption_keys_suite_check;
ALTER TABLE participant_encryption_keys ADD CONSTRAINT participant_encryption_keys_suite_check
    CHECK (suite IN ('x25519', 'mlkem768-x25519', 'sm2'));
ALTER TABLE participant_encryption_keys DROP CONSTRAINT IF EXISTS participant_encryption_keys_signature_check;
ALTER TABLE participant_encryption_keys ADD CONSTRAINT participant_encryption_keys_signature_check
    CHECK (length(signature) BETWEEN 8 AND 72);
