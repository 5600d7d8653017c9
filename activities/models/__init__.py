"""Model providers behind one contract (`ModelTurnInput` → `ModelTurnResult`)."""
