"""Files patients add to their inquiry: judged by their whole content, stored encrypted,
given to staff and to clinics that took the patient on."""
