"""referral answers index

Routing judges a clinic's responsiveness by its latest answers to referrals: an index on
(clinic_id, responded_at) finds those, where the index on (clinic_id, created_at) made it
read every answer the clinic ever gave; with created_at last, from the index alone.

Revision ID: 0008_referral_answers_index
Revises: 0007_lead_list_indexes
Create Date: 2026-12-07 23:30:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0008_referral_answers_index'
down_revision = '0007_lead_list_indexes'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_referrals_clinic_responded', 'referrals',
                    ['clinic_id', 'responded_at', 'created_at'])


def downgrade():
    op.drop_index('ix_referrals_clinic_responded', table_name='referrals')
