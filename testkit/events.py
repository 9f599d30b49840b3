"""``local.events`` under its former name, for the bench until it imports ``local.events``."""

from local.events import LambdaContext, http_event, sqs_event, sqs_record

__all__ = ["LambdaContext", "http_event", "sqs_event", "sqs_record"]
