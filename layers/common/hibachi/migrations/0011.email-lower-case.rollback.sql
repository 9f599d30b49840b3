-- The lower-cased emails stay lower case (their original case is not kept); only the checks go.
ALTER TABLE conversation_identities DROP CONSTRAINT IF EXISTS conversation_identities_email_lower_case;
ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_email_lower_case;
