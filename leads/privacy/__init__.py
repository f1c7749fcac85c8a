"""Personal data: encrypted at rest, found through keyed indexes, exported and erased on
request (CONTRACT §4 *People*), re-encrypted when keys rotate."""
