# Rules of the tables stage.
