"""What a job needs on its machine: seeds, its device and GPU slot, the stall watchdog."""
