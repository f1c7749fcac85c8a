"""Statuses in words a person reads on the pages, in the page's language: one table for
the console and the clinic portal."""

from flask_babel import lazy_gettext

from leads.pipeline.states import ReferralStatus

REFERRAL_STATUS_WORDS = {
    ReferralStatus.REQUESTED: lazy_gettext("Requested"),
    ReferralStatus.RECEIVED: lazy_gettext("Opened by the clinic"),
    ReferralStatus.ACCEPTED: lazy_gettext("Accepted"),
    ReferralStatus.QUOTED: lazy_gettext("Quoted"),
    ReferralStatus.BOOKED: lazy_gettext("Booked"),
    ReferralStatus.DECLINED: lazy_gettext("Declined"),
    ReferralStatus.EXPIRED: lazy_gettext("Expired"),
    ReferralStatus.CANCELLED: lazy_gettext("Cancelled"),
}
