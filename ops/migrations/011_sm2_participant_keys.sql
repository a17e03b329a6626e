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
