//! Data dictionary in QuickFIX's XML format (placeholder; being written).
