"""A quote names the protocol the buyer chose and its parameters; jobs already made for quotes and
orders are marked with their caller, so that their end is routed by that key."""

from django.db import migrations, models


def callers(apps, schema_editor):
    Job = apps.get_model("compute", "Job")
    QuoteMeasurement = apps.get_model("marketplace", "QuoteMeasurement")
    OrderJob = apps.get_model("marketplace", "OrderJob")
    Job.objects.filter(id__in=QuoteMeasurement.objects.values("job_id")).update(caller="quote")
    Job.objects.filter(id__in=OrderJob.objects.values("job_id")).update(caller="order")


class Migration(migrations.Migration):

    dependencies = [
        ('compute', '0003_jobs_have_parties'),
        ('marketplace', '0003_order_cancel_idempotency_key'),
    ]

    operations = [
        migrations.AddField(
            model_name='quote',
            name='compute_type',
            field=models.CharField(default='psi', help_text='The protocol the buyer chose.', max_length=32),
        ),
        migrations.AddField(
            model_name='quote',
            name='params',
            field=models.JSONField(blank=True, default=dict, help_text='Its parameters, as the protocol checked them.'),
        ),
        migrations.AlterField(
            model_name='product',
            name='compute_types',
            field=models.JSONField(blank=True, default=list, help_text='The protocols it sells, by their names in the protocol registry.'),
        ),
        migrations.RunPython(callers, migrations.RunPython.noop),
    ]
