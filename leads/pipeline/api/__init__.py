"""The pipeline's HTTP resources: leads and their figures for staff, referrals for clinics."""
