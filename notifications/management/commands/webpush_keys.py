from django.core.management.base import BaseCommand

from notifications.channels.web_push import vapid_keys_generate


class Command(BaseCommand):
    help = (
        "Print a new VAPID key pair for Web Push as environment lines (DWC_WEBPUSH_VAPID_PRIVATE_KEY, "
        "DWC_WEBPUSH_VAPID_PUBLIC_KEY). Keep the pair: browsers subscribed with one public key stop "
        "receiving notifications when it changes."
    )

    def handle(self, *args, **options):
        private, public = vapid_keys_generate()
        self.stdout.write(f"DWC_WEBPUSH_VAPID_PRIVATE_KEY={private}\nDWC_WEBPUSH_VAPID_PUBLIC_KEY={public}")
