"""Every change to channels (channels.py), deliveries (deliveries.py) and the inbox (inbox.py): the API,
the admin and the tasks call these."""
