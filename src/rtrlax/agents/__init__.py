"""Online prediction and control agents built on estimators + learning (RL)."""
