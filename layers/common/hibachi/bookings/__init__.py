"""Bookings: models, SQL (``repository``), local-time rules (``times``) and use cases (``service``).

Capacity is the database's job: an exclusion constraint per chef over the time a booking holds
the chef (event start to end plus the travel buffer), on confirmed bookings only.
"""
