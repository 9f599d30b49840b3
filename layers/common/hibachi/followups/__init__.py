"""Post-event follow-ups: the ``schedule_followup`` and ``send_followup`` jobs, their SQL
(``repository``), the EventBridge Scheduler and SNS calls (``service``) and their reconcilers."""
