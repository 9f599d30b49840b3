"""The local stack: the whole app on one machine, without Docker or an AWS account.

    python -m local.run        # PostgreSQL + migrations + moto + gateway + worker + schedules
    python -m local.token      # a dev JWT for the gateway
    python -m local.routes     # the route table read from template.yaml

Modules: ``pg`` (embedded PostgreSQL), ``aws`` (moto server and the template's resources),
``auth`` (dev issuer, JWT authorizer), ``routes`` (template -> functions and routes), ``runtime``
(Lambda execution environments as worker processes), ``gateway`` (HTTP API, payload 2.0),
``poller`` (SQS event source), ``scheduler`` (reconciler tick, one-time schedules), ``stack``
(all of it as one object, for ``run`` and the tests), ``events`` (Lambda events and context: the
one builder of the gateway, the poller, the workers, the tests, the bench and the ops CLI).
"""
