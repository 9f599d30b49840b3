"""Conversations and messages: models, SQL (``repository``) and use cases (``service``)."""
