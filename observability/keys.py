"""Names shared by the workflow side and the log processors (a tiny module: the sandbox imports it)."""

#: Baggage the workflow sets per state; Temporal's interceptor carries it into activities.
BAGGAGE_STATE = "factory.state"
BAGGAGE_BLUEPRINT = "factory.blueprint"
