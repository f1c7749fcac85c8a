"""clinic responsiveness

Routing judges a clinic's responsiveness by the median hours it took to answer its 50
latest referrals. It read every answer the clinic ever gave, for every lead; the clinic now
keeps the figure, worked out again as it answers (leads/routing/operations.py), from an
index on (clinic_id, responded_at, created_at) that holds all it needs. What was answered
before this revision is counted here.

Revision ID: 0008_clinic_responsiveness
Revises: 0007_lead_list_indexes
Create Date: 2026-12-07 23:30:00.000000

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0008_clinic_responsiveness'
down_revision = '0007_lead_list_indexes'
branch_labels = None
depends_on = None

HOURS = {
    'postgresql': 'CAST(EXTRACT(EPOCH FROM (responded_at - created_at)) AS DOUBLE PRECISION)'
                  ' / 3600',
    'sqlite': '(julianday(responded_at) - julianday(created_at)) * 24',
}
# The same figure as the app's `_median_hours_to_answer`, as it stood at this revision.
BACKFILL = """
UPDATE clinics SET median_hours_to_answer = (
    SELECT avg(hours) FROM (
        SELECT hours, row_number() OVER (ORDER BY hours) AS place, count(*) OVER () AS answers
        FROM (SELECT {hours} AS hours FROM referrals
              WHERE referrals.clinic_id = clinics.id AND responded_at IS NOT NULL
              ORDER BY responded_at DESC LIMIT 50) AS latest
    ) AS ranked
    WHERE place = (answers + 1) / 2 OR place = (answers + 2) / 2)
"""


def upgrade():
    op.create_index('ix_referrals_clinic_responded', 'referrals',
                    ['clinic_id', 'responded_at', 'created_at'])
    with op.batch_alter_table('clinics') as batch_op:
        batch_op.add_column(sa.Column('median_hours_to_answer', sa.Float(), nullable=True))
    op.execute(BACKFILL.format(hours=HOURS[op.get_bind().dialect.name]))


def downgrade():
    with op.batch_alter_table('clinics') as batch_op:
        batch_op.drop_column('median_hours_to_answer')
    op.drop_index('ix_referrals_clinic_responded', table_name='referrals')
