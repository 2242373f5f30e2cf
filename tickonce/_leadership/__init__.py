"""Leadership: the lease and its fencing epoch (``lease``, ``fencing``), the live contenders
(``membership``), one shard's leadership (``shard``), one process contending for every shard
(``contender``), and hearing a web server stop (``stop_signals``).
"""
