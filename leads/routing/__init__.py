"""Matching a lead to the clinics that fit it, referring it to them, and sending it to a
coordinator when none does; referrals that go unanswered expire."""
