"""Shared code of the hibachi booking-assistant backend (the ``CommonLayer`` Lambda layer).

One module per concept: ``conversations`` (messages and emotion statistics), ``bookings`` and
``followups``; infrastructure in ``settings``, ``db``, ``jobs``, ``api``, ``errors``, ``observability``.
Modules import their heavy dependencies (boto3) lazily, so a function pays only for what it uses.
"""
