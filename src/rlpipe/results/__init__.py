"""What a sweep's telemetry says: tables, statistics, figures, status and the plan."""
