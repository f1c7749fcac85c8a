"""Webhooks (CONTRACT §5): a clinic's systems told of its referrals, signed as Standard
Webhooks says, each delivery written beside the change it reports and sent by the workers."""
