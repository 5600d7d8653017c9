"""Every piece of I/O: model providers, tools and their sandbox, validators, the ledger."""
