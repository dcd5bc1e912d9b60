from setuptools import find_packages, setup

with open("README.rst", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="txqbroker",
    version="0.1.0.dev0",
    description="A Twisted-native task broker client: Redis, Disque, SQS, IronMQ, SQLite",
    long_description=long_description,
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.10",
    # package_dir={"": "."} makes `pip install -e .` use a .pth path entry,
    # so Twisted's plugin scan finds twisted/plugins/txqbroker_plugin.py.
    package_dir={"": "."},
    packages=find_packages(include=["txqbroker", "txqbroker.*"]) + ["twisted.plugins"],
    package_data={"txqbroker": ["py.typed"]},
    install_requires=[
        "twisted[tls]>=24.7",
        "txredisapi>=1.4.10",
        "zope.interface>=6",
        "treq>=24.9",
        # txqbroker monitor, /metrics (issue 13)
        "rich>=13",
        "prometheus_client>=0.17",
        "croniter>=2.0",
    ],
    extras_require={
        "hiredis": ["hiredis"],
        "aws": ["botocore"],
        "test": [
            "pytest",
            "pytest-twisted",
            "hiredis",
            "redis",
            "moto[server]",
            "boto3",
            "django-q2",
            "iron-mq",
        ],
        "dev": ["mypy", "mypy-zope", "sphinx", "types-croniter"],
    },
    entry_points={"console_scripts": ["txqbroker = txqbroker.cli:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
    ],
)
