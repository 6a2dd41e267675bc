# Pass-through: every request is allowed. The floor for lastmile's own cost.
package lastmile

decision := {}
