DROP TABLE IF EXISTS verification_codes;
