# Rules of the corruption stage.
