"""Verified identities: the phones and emails proven in a conversation (by its channel, or by a
one-time code), which widen what the assistant acting in that conversation may reach."""
