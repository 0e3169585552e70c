"""The local Spark runtime and the class-data-sharing archive of its JVMs."""
