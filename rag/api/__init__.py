"""The HTTP edge: the app factory (`app`), what routes depend on (`deps`), domain errors as HTTP
statuses (`errors`), keys and scopes (`auth`), limits (`limits`), bodies (`schemas`), `routes/`."""
