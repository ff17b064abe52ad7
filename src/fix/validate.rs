//! Message validation against a data dictionary (placeholder; being written).
