"""
Amazon SQS: ``sqs://queue-name?region=eu-west-1``.

* :mod:`txqbroker.sqs.broker`: :class:`~txqbroker.sqs.broker.SQSBroker`;
* :mod:`txqbroker.sqs.config`: the URL and options;
* :mod:`txqbroker.sqs.signing`: SigV4 (botocore's or txqbroker's);
* :mod:`txqbroker.sqs.credentials`: where credentials come from;
* :mod:`txqbroker.sqs.bodies`: how packages travel in text bodies;
* :mod:`txqbroker.sqs.errors`: the typed errors.
"""
