"""Typical handlers: ``store_message`` and ``create_booking`` written the common way, for the cold-start
comparison (``bench.coldstart.compare``). Each folder holds an ``app.py`` that a fresh process imports
like Lambda imports a handler (its folder is the working directory, ``sys.path[0]``).

The common way: module-level imports of everything; a boto3 SQS client and a psycopg connection made
at import; Powertools ``APIGatewayHttpResolver(enable_validation=True)`` with a pydantic body model;
Powertools ``Logger`` and ``Metrics``. The work: an upsert and an insert in one transaction (the old
system's *after* flow, ``bench/reference.py``'s tables), then one SQS send. Not part of the app: no
hibachi import, no idempotency key, no capacity check.
"""
