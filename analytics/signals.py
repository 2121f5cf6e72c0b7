"""What analytics tell the rest of the product without knowing it (analytics may not import workflows
or notifications: .importlinter): the notifications app connects to these in its AppConfig.ready()."""

from django.dispatch import Signal

# Sent once an insights refresh has committed, with `insights`: the Insight rows it opened (any
# severity; a receiver picks what it wants). Not sent for insights updated, dismissed or resolved.
insight_opened = Signal()
