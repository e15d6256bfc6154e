"""Everything that speaks Puter's wire protocol, and nothing else."""
