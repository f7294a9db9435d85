"""The world simulator: a payment and lending platform's population and the gangs that attack it.

``world.simulate(WorldConfig(...))`` builds a world in integer arrays; ``writer.write_world`` writes it as
Parquet (events in the API's envelope, labels, victim reports, complaints, the gangs' truth);
``demo.run_demo`` streams a world through riskguard and scores the decisions (``riskguard demo``). One
module per typology: ``telecom``, ``takeover``, ``farms``, ``loans``, ``rights``, ``cardtest``,
``recruitment``; the population, its daily traffic and money in ``population``, ``background``,
``ledger``. See docs/simulator.md.
"""
