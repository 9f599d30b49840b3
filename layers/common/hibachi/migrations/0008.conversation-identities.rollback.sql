DROP TABLE IF EXISTS conversation_identities;
