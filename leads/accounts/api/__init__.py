"""The accounts' HTTP resources: the calling user, and staff users for admins."""
